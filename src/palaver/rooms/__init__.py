"""The room at `conversation_url`: the page's HTML templates and (static/) its script, styles and the JS drop-in."""
