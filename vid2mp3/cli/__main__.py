"""`python -m vid2mp3.cli`: the same as the `vid2mp3` console script."""

import sys

from vid2mp3.cli.main import main

sys.exit(main())
