"""The playground: a local web page over the demo server, its agents and their decisions."""
