"""django-redisroles: the five roles Redis plays in a Django project."""

__version__ = "0.1.0.dev0"
