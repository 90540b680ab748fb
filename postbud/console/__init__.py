"""The web console: sign-in, the manual queue, track and trace, statistics and health, per access profile."""
