"""The staff console: server-rendered pages under ``/console`` for marketers, sales and support.

The console is an HTML shell over the REST API: every page reads and every form changes
through an API call made in-process (:mod:`ecrm_interaction.console.api`) with the signed-in
person's session cookie and CSRF token, so roles, validation and audit are the API's, and
whatever the console does a script can do too. ``access.PAGES`` is the console's role table;
``pages/`` holds one module per page group, ``templates/`` their Jinja2 templates and
``static/`` the stylesheet, the script and the vendored libraries (htmx, uPlot).
"""
