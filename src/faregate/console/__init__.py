"""What operators do to users and organizations: find, inspect, grant, refund, deactivate."""
