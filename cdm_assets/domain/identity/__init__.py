"""Identity resolution: standardised customer records, match rules, clusters and stable Customer IDs."""
