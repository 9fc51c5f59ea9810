"""vid2mp3 shared package: settings, domain, ports and adapters, bootstrap, logging.

Every function ships with this package; nothing here reads the environment at import time.
"""
