"""The prepare stage: corpus sources (number generator, text files, tables), cleaning, splitting."""
