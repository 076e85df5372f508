"""The leaderboard model: probes (submissions with known leaderboard scores) and what local scores predict."""
