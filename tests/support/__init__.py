"""What several test modules share: servers, browsers, chaos checks, scenario tables, factories."""
