"""``python -m ragtune.cli``: what ``accelerate launch -m ragtune.cli`` runs."""

from ragtune.cli import main

main()
