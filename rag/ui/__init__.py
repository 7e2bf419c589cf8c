"""The chat UI's parts that are not Gradio layout: rendering answers, articles and the archive.

``rag.ui.render`` turns an ``Answer`` (and the archive's catalogue) into the HTML the browser
shows; ``rag.ui.markdown`` the Markdown reply of the chat's ``/respond`` endpoint;
``rag.ui.assets`` holds the page's style sheet and script. ``app.py`` lays them out.
"""
