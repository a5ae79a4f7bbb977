# Models for worklist.
