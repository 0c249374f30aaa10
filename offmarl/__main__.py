"""``python -m offmarl``: the same CLI as the ``offmarl`` command."""

from offmarl.cli import main

main()
