"""Files -> Documents -> Chunks: discovery, one parser per format, the token-sized chunker."""
