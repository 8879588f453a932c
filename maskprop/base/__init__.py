"""The ground floor everything imports: the configuration, its validation and named presets."""
