"""The public side of deployments: the landing page and the embed/widget script (api/deployment_pages.py)."""
