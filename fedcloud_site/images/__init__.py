"""Image-list subscriber: verified VO images registered in the cloud, expired ones retired."""
