from vid2vid.cli import main

raise SystemExit(main())
