-- One database per service: services never share tables.
CREATE DATABASE intake;
CREATE DATABASE evidence;
CREATE DATABASE audit;
