"""Sub-commands of the pixwizard CLI (discovered by pixwizard.cli)."""
