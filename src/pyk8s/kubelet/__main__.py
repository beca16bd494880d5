"""`python -m pyk8s.kubelet ARGS` = `pyk8s agent ARGS`."""

from pyk8s.cli.agent_command import main

raise SystemExit(main())
