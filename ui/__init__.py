"""ui: the Gradio app (built in a later issue)."""
