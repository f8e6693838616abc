"""Stand-ins for the cloud identity services Conjur's cloud authenticators trust (AWS STS)."""
