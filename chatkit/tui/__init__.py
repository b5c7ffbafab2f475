"""The Textual chat app (`chatkit chat`). Importing this package imports no heavy library."""
