from crdt_server.cli import main

raise SystemExit(main())
