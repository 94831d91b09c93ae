import sys

from mazeagent.cli import main

sys.exit(main())
