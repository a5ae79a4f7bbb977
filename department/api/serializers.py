from rest_framework import serializers

from department.models import MaterialItem


class ChartDatasetSerializer(serializers.Serializer):
    label = serializers.CharField()
    data = serializers.ListField(child=serializers.FloatField(allow_null=True))


class ChartSerializer(serializers.Serializer):
    name = serializers.CharField()
    title = serializers.CharField()
    type = serializers.ChoiceField(choices=["bar", "line", "stacked"])
    unit = serializers.CharField(allow_blank=True)
    note = serializers.CharField(allow_blank=True)
    horizontal = serializers.BooleanField()
    labels = serializers.ListField(child=serializers.CharField())
    datasets = ChartDatasetSerializer(many=True)


class FigureSerializer(serializers.Serializer):
    """One dashboard figure: a table (columns + rows) and how the chart draws it."""

    name = serializers.CharField()
    title = serializers.CharField()
    unit = serializers.CharField(allow_blank=True)
    columns = serializers.ListField(child=serializers.CharField())
    rows = serializers.ListField(child=serializers.ListField(child=serializers.JSONField()))
    chart = ChartSerializer()


class FigureNameSerializer(serializers.Serializer):
    name = serializers.CharField()
    url = serializers.CharField()


class MaterialItemSerializer(serializers.ModelSerializer):
    low_stock = serializers.BooleanField(source="is_low", read_only=True)

    class Meta:
        model = MaterialItem
        fields = ["code", "name", "kind", "unit", "stock_level", "low_stock_threshold", "low_stock", "active"]
