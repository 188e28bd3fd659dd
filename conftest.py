pytest_plugins = ["ecrm_embedded.testing"]
