"""Records, enums, pages, ids and the clock: plain data and the rules that need no I/O.

Nothing here imports the rest of gql_chat, so every layer can use it (a test says so)."""
