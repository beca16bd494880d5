"""`python -m pyk8s.kubelet.images --out DIR` builds the project images."""

from pyk8s.kubelet.images import main

raise SystemExit(main())
