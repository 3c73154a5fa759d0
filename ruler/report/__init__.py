"""Reports, re-derivable from a run folder at any time: results.json, CSV and Markdown tables, PNG plots and one
self-contained HTML page. Pure functions of the scored predictions; they never call a model."""
