"""Learned front-ends of oscsim: encoders, decoders, classifiers, forecasters, data sets."""
