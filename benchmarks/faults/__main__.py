import sys

from benchmarks.faults.campaign import main

sys.exit(main())
