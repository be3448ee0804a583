"""The intake service: takes evidence from the field over tus 1.0, encrypts it on arrival,
stores it and announces each completed submission."""
