"""The web app, served by intake at ``/``: its page, its built assets, the settings it reads
(``/config.json``) and who the signed-in person is (``/v1/whoami``)."""
