from gql_chat.cli import main

raise SystemExit(main())
