"""The runnable entry points that compose the package: the demo, the Code-Flow pipeline, the scaling sweep and
the drill front end. Nothing imports these but the `iquest` command."""
