"""Expert review: a web page where domain experts check items against their graph paths.

`kgsynth review RUN_DIR` serves it (`kgsynth.review.serve`: FastAPI, Jinja2 templates,
Cytoscape.js vendored under static/); decisions go to `RUN_DIR/review/reviews.sqlite`
(`kgsynth.review.store`) and reach the dataset only through `kgsynth review export` and
`kgsynth export` (`kgsynth.review.figures`). Items and verdicts are read, never changed.

Nothing is imported here: export reads reviews without needing the web stack.
"""
