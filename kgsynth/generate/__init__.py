"""Path → item: thinking paths, multiple-choice and open-ended questions."""
