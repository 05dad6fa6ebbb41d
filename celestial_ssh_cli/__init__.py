"""The celestial-ssh command line: click for arguments, rich for the display.

It imports the library; the library never imports it. Module map:

- ``boundary``: every command runs inside it; exceptions become the message, the JSON
  error document and the exit code (``failures``: the exit codes and messages).
- ``options``: the shared options, and ``host_settings``, the one place a command turns
  --ssh-config, --inventory and --accept-new-host-keys into how it reaches hosts.
- ``display`` (``choose_output``: live / plain / JSON / quiet) and ``batch_display``.
- ``signals``: Ctrl-C and SIGTERM cancel what runs, safely.
- commands: ``main`` (migrate, recover, probe), ``batch_commands`` + ``batch_run`` (batch,
  evacuate), ``fleet_commands`` (doctor, ps), ``http_shim`` (serve), ``legacy``
  (migrate-container); ``report_file`` for --report.
"""
