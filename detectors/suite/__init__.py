"""One model's detector suite: settings, signals and their references' windows,
the window round and its false-discovery control, alarm states, and the error
stream from late labels; ``ModelDetectors`` ties them together."""
