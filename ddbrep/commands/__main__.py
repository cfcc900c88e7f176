import sys

from ddbrep.commands import main

sys.exit(main())
