import sys

from sedlib.cli import main

sys.exit(main())
