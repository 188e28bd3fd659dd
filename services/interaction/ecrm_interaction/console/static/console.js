// The console's only script of its own: draws the charts (uPlot) from their data-chart attribute,
// asks before a destructive form is sent (data-confirm), and copies a shown-once secret.
(function () {
  "use strict";
  var palette = ["#2150c8", "#b3261e", "#1e7a34", "#8a5a00", "#6b2fb3", "#00758f"];

  function drawCharts(root) {
    if (typeof uPlot === "undefined") return;
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      if (el.dataset.drawn) return;
      el.dataset.drawn = "1";
      var spec = JSON.parse(el.dataset.chart);
      var width = Math.max(240, el.clientWidth || 600);
      if (spec.labels) { drawReport(el, spec, width); return; }
      var data = [spec.x].concat(spec.series.map(function (s) { return s.values; }));
      var series = [{}].concat(spec.series.map(function (s, i) {
        return { label: s.label, stroke: palette[i % palette.length], width: 2 };
      }));
      new uPlot({ width: width, height: 200, series: series, scales: { x: { time: true } } }, data, el);
    });
  }

  // A report's chart (reports pages): x is categories (periods, steps, cells), lines or bars.
  function drawReport(el, spec, width) {
    var labels = spec.labels;
    var data = [labels.map(function (_, i) { return i; })].concat(spec.series.map(function (s) { return s.values; }));
    var count = Math.max(1, spec.series.length);
    var series = [{ value: function (u, i) { return i == null ? "" : labels[i]; } }].concat(spec.series.map(function (s, i) {
      var shown = { label: s.label, stroke: palette[i % palette.length], width: 2 };
      if (spec.kind === "bar" && count === 1) {  // several series stay lines: bars of one x would overlap
        shown.fill = palette[i % palette.length];
        shown.paths = uPlot.paths.bars({ size: [0.6, 80], align: 0 });
        shown.points = { show: false };
      }
      return shown;
    }));
    var format = spec.y === "rate" ? function (v) { return v == null ? "" : (v * 100).toFixed(0) + " %"; } : null;
    var axes = [{ values: function (u, splits) { return splits.map(function (i) { return labels[i] || ""; }); },
                  splits: function () { var step = Math.max(1, Math.ceil(labels.length / 12));
                    return labels.map(function (_, i) { return i; }).filter(function (i) { return i % step === 0; }); } },
                format ? { values: function (u, splits) { return splits.map(format); } } : {}];
    new uPlot({ width: width, height: 240, series: series, axes: axes,
                scales: { x: { time: false, range: [-0.5, labels.length - 0.5] } } }, data, el);
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  }, true);

  // Templates (issue 18, rules-templates): when typing in a form stops, its [data-live-frame]
  // button is pressed: it posts the form into the sandboxed HTML preview frame.
  var liveTimer;
  document.addEventListener("input", function (event) {
    var form = event.target.form;
    var button = form && form.querySelector("[data-live-frame]");
    if (!button || !form.requestSubmit) return;
    clearTimeout(liveTimer);
    liveTimer = setTimeout(function () { form.requestSubmit(button); }, 500);
  });

  document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
  document.addEventListener("htmx:afterSettle", function (event) { drawCharts(event.target); });
})();
