import os, tempfile, time, random
from pathlib import Path
import psycopg
from bench import interaction_bench as ib
from ecrm_embedded.broker import TansuBroker
from ecrm_embedded.net import free_port
from ecrm_embedded.postgres import PostgresCluster, find_pg_bin
from ecrm_schemas.kafka_admin import ensure_topics
records = ib.workload(40000, 12000)
with tempfile.TemporaryDirectory(prefix="ecrm-x-") as tmp:
    w=Path(tmp); os.chmod(w,0o755)
    broker = TansuBroker(port=free_port(), log_path=w/"kafka.log").start()
    cluster = PostgresCluster(w/"pg", free_port(), find_pg_bin()).start()
    try:
        ensure_topics({"bootstrap.servers": broker.bootstrap}); ib.fill(broker.bootstrap, records)
        url = ib.new_database(cluster, "pg_1")
        a=psycopg.connect(url.replace("+psycopg",""),autocommit=True); a.execute("alter system set log_min_duration_statement=15"); a.execute("select pg_reload_conf()")
        print(ib.measure_workers(broker.bootstrap, url, 40000, 1, "pg-1", w))
        conn = psycopg.connect(url.replace("+psycopg",""))
        print(conn.execute("select status, count(*) from actions group by 1").fetchall())
        print(conn.execute("select count(*) from customers").fetchall())
        ids=[r[0] for r in conn.execute("select customer_id from customers order by random() limit 500")]
        q="select id, dedup_key, rule_id, customer_id, cause, status, payload, created_at from actions where customer_id = ANY(%s::varchar(256)[]) and status in ('pending','waiting','deferred') order by created_at, id"
        for line in conn.execute("explain analyze "+q,(ids,)): print(line[0])
        0 and conn.execute("prepare p(varchar(256)[]) as "+q.replace("%s::varchar(256)[]","$1"))
        conn.execute("set plan_cache_mode=force_generic_plan")
        if 0:
         for line in conn.execute("explain analyze execute p(%s)",(ids,)): print(line[0])
        import re
        log=open(w/"pg"/"server.log").read(); ds=re.findall(r"duration: ([\d.]+) ms  (?:statement|execute [^:]*): (.{0,90})",log)
        import collections; agg=collections.defaultdict(list)
        [agg[q[:70]].append(float(d)) for d,q in ds]
        [print(len(v), round(sum(v)), round(max(v)), k) for k,v in sorted(agg.items(), key=lambda kv:-sum(kv[1]))[:15]]
    finally:
        cluster.stop(); broker.stop()
