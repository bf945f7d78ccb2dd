"""The raw layer: landed files into `raw.<source>`, with a quarantine for what cannot be accepted.

`lines` finds physical lines (the independent row count), `delimited` and
`json_lines` read one file each, `load` builds and swaps in a source's table.
"""
