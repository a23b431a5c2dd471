from vid2vid.cli.main import main

raise SystemExit(main())
