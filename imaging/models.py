# Models for imaging.
