"""Phone numbers: parsing to E.164, the policy on which numbers may receive codes, SMS senders."""
