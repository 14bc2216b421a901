"""Reference microservices (registry, users, notifications, saga orchestrator) the harness runs and tests."""
