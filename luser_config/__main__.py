"""``python -m luser_config ...`` = ``luser config ...`` without importing the service."""

from .cli import config_group

config_group(prog_name="luser config")
