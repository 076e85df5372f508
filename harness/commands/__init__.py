"""The `prh` subcommands that each job package owns, kept above the library they drive.

Each module registers its subcommands with `add_commands(subparsers)` (handlers via `set_defaults`), takes
its suites, candidates, embedder and store from the one `Workspace`, and imports nothing heavy at module
level, so that `prh --help` stays fast. Living here rather than inside `report/` or `leaderboard/` keeps
every import pointing down: the Workspace uses those packages as libraries, and only commands use the
Workspace.
"""
