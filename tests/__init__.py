"""nlp-template tests: render the template and run what it generates, for real."""
