"""The search cascade: exact bytes, perceptual hashes and grey thumbnails, embedding kNN over whole works and
their parts, geometric verification, near-copy clusters (cascade), the FAISS shards it searches (index, parts,
thumbnails), separate pictures inside a query (regions) and keypoints with their geometry (keypoints, geometry)."""
