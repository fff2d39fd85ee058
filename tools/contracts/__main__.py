"""``python -m tools.contracts [--check]``: write the contract artefacts, or report drift."""

from tools.contracts.files import main

raise SystemExit(main())
