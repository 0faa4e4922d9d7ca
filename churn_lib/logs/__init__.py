"""The logs: prediction records, outcomes, the monitoring history, and their readers."""
